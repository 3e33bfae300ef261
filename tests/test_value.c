/*
 * test_value.c -- rs_value: constructors and getters, arrays, maps (small and indexed),
 * copy and equality, trees a million levels deep, and out-of-memory paths.
 */
#include "harness.h"
#include "hash.h"
#include "value.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* A tree with every type, a map big enough to be indexed, and a chain deeper than the local
 * frames of the copy and equality walks. */
static rs_value *sample_tree(void)
{
    rs_value *root = rs_value_map();
    assert_non_null(root);
    assert_ok(rs_map_set(root, "name", rs_value_string("sample")));
    assert_ok(rs_map_setn(root, "bin\0key", 7, rs_value_stringn("a\0b", 3)));
    rs_value *list = rs_value_array();
    assert_ok(rs_array_push(list, rs_value_int(-5)));
    assert_ok(rs_array_push(list, rs_value_double(2.5)));
    assert_ok(rs_array_push(list, rs_value_bool(true)));
    assert_ok(rs_array_push(list, rs_value_null()));
    assert_ok(rs_array_push(list, rs_value_array()));
    assert_ok(rs_array_push(list, rs_value_map()));
    assert_ok(rs_map_set(root, "list", list));
    rs_value *big = rs_value_map();
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_ok(rs_map_set(big, key, rs_value_int(i)));
    }
    assert_ok(rs_map_set(root, "big", big));
    rs_value *chain = rs_value_string("bottom");
    for (int i = 0; i < 100; i++) {
        rs_value *a = rs_value_array();
        assert_ok(rs_array_push(a, chain));
        chain = a;
    }
    assert_ok(rs_map_set(root, "chain", chain));
    return root;
}

/* Asserts that map's keys are exactly those of `keys` in order: NUL-terminated keys one
 * after the other, "" ending the list (so keys of their own cannot be empty nor hold NULs). */
static void assert_keys(const rs_value *map, const char *keys)
{
    size_t i = 0;
    for (; *keys; keys += strlen(keys) + 1, i++) {
        size_t len;
        const char *k = rs_map_key(map, i, &len);
        assert_non_null(k);
        assert_int_equal(len, strlen(keys));
        assert_string_equal(k, keys);
    }
    assert_int_equal(rs_map_len(map), i);
}

/* ---- scalars ----------------------------------------------------------------------------- */

static void test_scalars(void **state)
{
    rs_value *i = rs_value_int(INT64_MIN);
    assert_non_null(i);
    assert_int_equal(rs_value_type(i), RS_TINT);
    assert_true(rs_value_get_int(i) == INT64_MIN);
    assert_true(rs_value_get_double(i) == (double)INT64_MIN);
    assert_false(rs_value_get_bool(i));
    size_t len = 99;
    assert_null(rs_value_get_string(i, &len));
    assert_int_equal(len, 0);

    rs_value *d = rs_value_double(2.5);
    assert_int_equal(rs_value_type(d), RS_TDOUBLE);
    assert_true(rs_value_get_double(d) == 2.5);
    assert_int_equal(rs_value_get_int(d), 0);
    assert_false(rs_value_get_bool(d));

    rs_value *s = rs_value_string("h\xc3\xa9llo");
    assert_int_equal(rs_value_type(s), RS_TSTRING);
    assert_string_equal(rs_value_get_string(s, &len), "h\xc3\xa9llo");
    assert_int_equal(len, 6);
    assert_non_null(rs_value_get_string(s, NULL));
    assert_int_equal(rs_value_get_int(s), 0);
    assert_true(rs_value_get_double(s) == 0.0);
    assert_int_equal(rs_array_len(s), 0);
    assert_int_equal(rs_map_len(s), 0);

    rs_value *a = rs_value_array(), *m = rs_value_map();
    assert_int_equal(rs_value_type(a), RS_TARRAY);
    assert_int_equal(rs_value_type(m), RS_TMAP);
    assert_null(rs_value_get_string(a, NULL));
    assert_false(rs_value_get_bool(m));

    /* A NULL pointer reads as null. */
    assert_int_equal(rs_value_type(NULL), RS_TNULL);
    assert_false(rs_value_get_bool(NULL));
    assert_int_equal(rs_value_get_int(NULL), 0);
    assert_true(rs_value_get_double(NULL) == 0.0);
    assert_null(rs_value_get_string(NULL, &len));
    assert_null(rs_value_string(NULL));
    assert_null(rs_value_stringn(NULL, 3));
    assert_null(rs_value_copy(NULL));
    rs_value_destroy(NULL);

    const char *names[] = {"null", "bool", "int", "double", "string", "array", "map"};
    for (int t = RS_TNULL; t <= RS_TMAP; t++)
        assert_string_equal(rs_type_name((rs_type)t), names[t]);
    assert_string_equal(rs_type_name((rs_type)42), "unknown");

    rs_value_destroy(i);
    rs_value_destroy(d);
    rs_value_destroy(s);
    rs_value_destroy(a);
    rs_value_destroy(m);
}

static void test_singletons(void **state)
{
    rs_value *n = rs_value_null(), *t = rs_value_bool(true), *f = rs_value_bool(false);
    assert_ptr_equal(n, rs_value_null());
    assert_ptr_equal(t, rs_value_bool(true));
    assert_ptr_equal(f, rs_value_bool(false));
    assert_ptr_not_equal(t, f);
    assert_int_equal(rs_value_type(n), RS_TNULL);
    assert_int_equal(rs_value_type(t), RS_TBOOL);
    assert_true(rs_value_get_bool(t));
    assert_false(rs_value_get_bool(f));
    assert_int_equal(rs_value_get_int(t), 0);

    /* Destroy is a no-op, copy hands back the singleton, and one may sit in many trees. */
    rs_value_destroy(n);
    rs_value_destroy(t);
    assert_true(rs_value_get_bool(rs_value_bool(true)));
    assert_ptr_equal(rs_value_copy(t), t);
    assert_ptr_equal(rs_value_copy(n), n);
    rs_value *a = rs_value_array(), *b = rs_value_array();
    assert_ok(rs_array_push(a, t));
    assert_ok(rs_array_push(b, t));
    assert_ok(rs_array_push(a, n));
    rs_value_destroy(a);
    rs_value_destroy(b);
    assert_true(rs_value_get_bool(t));
    assert_true(rs_value_equal(n, NULL));
    assert_false(rs_value_equal(t, f));
}

static void test_binary_strings(void **state)
{
    rs_value *s = rs_value_stringn("a\0b\0", 4);
    size_t len;
    const char *p = rs_value_get_string(s, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(p, "a\0b\0", 5); /* NUL-terminated after len bytes too */
    assert_string_equal(p, "a");

    rs_value *empty = rs_value_stringn(NULL, 0);
    assert_non_null(empty);
    assert_string_equal(rs_value_get_string(empty, &len), "");
    assert_int_equal(len, 0);

    /* Not UTF-8 at all: strings are bytes. */
    rs_value *raw = rs_value_stringn("\xff\xfe\x00\x80", 4);
    rs_value *copy = rs_value_copy(raw);
    assert_true(rs_value_equal(raw, copy));
    assert_memory_equal(rs_value_get_string(copy, &len), "\xff\xfe\x00\x80", 4);
    assert_int_equal(len, 4);

    rs_value *x = rs_value_stringn("a\0c\0", 4), *shorter = rs_value_stringn("a\0b", 3);
    assert_false(rs_value_equal(s, x));
    assert_false(rs_value_equal(s, shorter));
    assert_false(rs_value_equal(s, empty));

    rs_value *all[] = {s, empty, raw, copy, x, shorter};
    for (size_t i = 0; i < RS__ARRAY_SIZE(all); i++)
        rs_value_destroy(all[i]);
}

/* ---- arrays ------------------------------------------------------------------------------ */

static void test_array_ops(void **state)
{
    rs_value *a = rs_value_array();
    for (int i = 0; i < 5; i++)
        assert_ok(rs_array_push(a, rs_value_int(i)));
    assert_int_equal(rs_array_len(a), 5);
    assert_int_equal(rs_value_get_int(rs_array_get(a, 4)), 4);
    assert_null(rs_array_get(a, 5));

    /* set frees the old item; setting the same item again is harmless. */
    assert_ok(rs_array_set(a, 1, rs_value_string("one")));
    assert_string_equal(rs_value_get_string(rs_array_get(a, 1), NULL), "one");
    assert_ok(rs_array_set(a, 1, rs_array_get(a, 1)));
    assert_string_equal(rs_value_get_string(rs_array_get(a, 1), NULL), "one");

    /* take removes and shifts; the caller owns the item. */
    rs_value *taken = rs_array_take(a, 1);
    assert_string_equal(rs_value_get_string(taken, NULL), "one");
    rs_value_destroy(taken);
    assert_int_equal(rs_array_len(a), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rs_value_get_int(rs_array_get(a, (size_t)i)), i == 0 ? 0 : i + 1);
    taken = rs_array_take(a, 3);
    assert_int_equal(rs_value_get_int(taken), 4);
    rs_value_destroy(taken);
    assert_null(rs_array_take(a, 3));
    assert_int_equal(rs_array_len(a), 3);

    /* Failures take the item too (ASan's leak check proves it is freed). */
    assert_rs(RS_EINVAL, rs_array_set(a, 3, rs_value_int(9)));
    assert_rs(RS_EINVAL, rs_array_push(a, NULL));
    assert_rs(RS_EINVAL, rs_array_set(a, 0, NULL));
    rs_value *m = rs_value_map();
    assert_rs(RS_EMISUSE, rs_array_push(m, rs_value_string("x")));
    assert_rs(RS_EMISUSE, rs_array_push(NULL, rs_value_int(1)));
    assert_rs(RS_EMISUSE, rs_array_set(m, 0, rs_value_int(1)));
    assert_null(rs_array_take(m, 0));
    assert_null(rs_array_get(m, 0));
    assert_int_equal(rs_array_len(NULL), 0);
    assert_rs(RS_EMISUSE, rs__array_reserve(m, 1));

    /* After a reservation, pushes cannot fail even when allocation does. */
    rs_value *items[100];
    for (int i = 0; i < 100; i++)
        items[i] = rs_value_int(i);
    assert_ok(rs__array_reserve(a, 100));
    rs__test_fail_allocations_after(0);
    for (int i = 0; i < 100; i++)
        assert_ok(rs_array_push(a, items[i]));
    rs__test_fail_allocations_after(-1);
    assert_int_equal(rs_array_len(a), 103);
    assert_int_equal(rs_value_get_int(rs_array_get(a, 102)), 99);

    rs_value_destroy(a);
    rs_value_destroy(m);
}

/* ---- maps -------------------------------------------------------------------------------- */

static void test_map_ops(void **state)
{
    rs_value *m = rs_value_map();
    assert_ok(rs_map_set(m, "a", rs_value_int(1)));
    assert_ok(rs_map_set(m, "b", rs_value_int(2)));
    assert_ok(rs_map_set(m, "c", rs_value_int(3)));
    assert_ok(rs_map_setn(m, "k\0x", 3, rs_value_int(4)));
    assert_ok(rs_map_setn(m, "", 0, rs_value_int(5)));

    /* Replacing keeps the position and frees the old value. */
    assert_ok(rs_map_set(m, "b", rs_value_string("two")));
    assert_int_equal(rs_map_len(m), 5);
    assert_ok(rs_map_remove(m, "", 0));
    assert_ok(rs_map_remove(m, "k\0x", 3));
    assert_keys(m, "a\0b\0c\0");
    assert_ok(rs_map_setn(m, "k\0x", 3, rs_value_int(4)));
    assert_ok(rs_map_setn(m, "", 0, rs_value_int(5)));
    assert_string_equal(rs_value_get_string(rs_map_get(m, "b"), NULL), "two");
    assert_string_equal(rs_value_get_string(rs_map_value(m, 1), NULL), "two");

    /* Keys are byte strings: "k\0x" is not "k". */
    size_t len;
    assert_memory_equal(rs_map_key(m, 3, &len), "k\0x", 4);
    assert_int_equal(len, 3);
    assert_null(rs_map_get(m, "k"));
    assert_int_equal(rs_value_get_int(rs_map_getn(m, "k\0x", 3)), 4);
    assert_int_equal(rs_value_get_int(rs_map_get(m, "")), 5);
    assert_int_equal(rs_value_get_int(rs_map_getn(m, NULL, 0)), 5);
    assert_null(rs_map_get(m, "zz"));
    assert_null(rs_map_get(m, NULL));

    /* remove keeps the order of the rest. */
    assert_ok(rs_map_remove(m, "a", 1));
    assert_rs(RS_ENOENT, rs_map_remove(m, "a", 1));
    assert_rs(RS_ENOENT, rs_map_remove(m, "k", 1));
    assert_ok(rs_map_remove(m, "k\0x", 3));
    assert_int_equal(rs_map_len(m), 3);
    assert_string_equal(rs_map_key(m, 0, NULL), "b");
    assert_string_equal(rs_map_key(m, 1, NULL), "c");
    assert_string_equal(rs_map_key(m, 2, &len), "");
    assert_int_equal(len, 0);
    assert_int_equal(rs_value_get_int(rs_map_get(m, "c")), 3);

    assert_null(rs_map_key(m, 3, &len));
    assert_int_equal(len, 0);
    assert_null(rs_map_value(m, 3));

    /* Misuse and bad arguments; the value is taken in every case. */
    rs_value *a = rs_value_array();
    assert_rs(RS_EMISUSE, rs_map_set(a, "x", rs_value_int(1)));
    assert_rs(RS_EMISUSE, rs_map_set(a, NULL, rs_value_int(1)));
    assert_rs(RS_EMISUSE, rs_map_setn(NULL, "x", 1, rs_value_int(1)));
    assert_rs(RS_EINVAL, rs_map_set(m, NULL, rs_value_int(1)));
    assert_rs(RS_EINVAL, rs_map_setn(m, NULL, 2, rs_value_int(1)));
    assert_rs(RS_EINVAL, rs_map_set(m, "x", NULL));
    assert_rs(RS_EMISUSE, rs_map_remove(a, "x", 1));
    assert_rs(RS_EINVAL, rs_map_remove(m, NULL, 1));
    assert_rs(RS_EMISUSE, rs__map_reserve(a, 1));
    assert_null(rs_map_get(a, "x"));
    assert_null(rs_map_key(a, 0, NULL));
    assert_int_equal(rs_map_len(a), 0);
    assert_int_equal(rs_map_len(m), 3);

    rs_value_destroy(a);
    rs_value_destroy(m);
}

static void test_map_10000_keys(void **state)
{
    enum { N = 10000 };
    rs_value *m = rs_value_map();
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key%d", i);
        assert_ok(rs_map_set(m, key, rs_value_int(i)));
    }
    assert_int_equal(rs_map_len(m), N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(rs_value_get_int(rs_map_get(m, key)), i);
    }

    /* Remove the even keys, from the front: every removal renumbers what follows. */
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "key%d", i);
        assert_ok(rs_map_remove(m, key, strlen(key)));
    }
    assert_int_equal(rs_map_len(m), N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key%d", i);
        rs_value *v = rs_map_get(m, key);
        if (i % 2)
            assert_int_equal(rs_value_get_int(v), i);
        else
            assert_null(v);
    }
    for (size_t j = 0; j < N / 2; j++) {
        snprintf(key, sizeof key, "key%zu", 2 * j + 1);
        assert_string_equal(rs_map_key(m, j, NULL), key);
        assert_int_equal(rs_value_get_int(rs_map_value(m, j)), 2 * j + 1);
    }

    /* Replacing keeps the place; a key added back goes to the end. */
    assert_ok(rs_map_set(m, "key5001", rs_value_int(-1)));
    assert_string_equal(rs_map_key(m, 2500, NULL), "key5001");
    assert_int_equal(rs_value_get_int(rs_map_value(m, 2500)), -1);
    assert_ok(rs_map_set(m, "key0", rs_value_int(0)));
    assert_string_equal(rs_map_key(m, N / 2, NULL), "key0");
    assert_int_equal(rs_value_get_int(rs_map_get(m, "key0")), 0);

    rs_value *copy = rs_value_copy(m);
    assert_true(rs_value_equal(m, copy));
    assert_int_equal(rs_value_get_int(rs_map_get(copy, "key9999")), 9999);
    rs_value_destroy(copy);
    rs_value_destroy(m);
}

/* Random sets and removes on a map that keeps crossing the indexing threshold, checked
 * against a plain model: exercises the index's backward-shift deletion. */
static void test_map_random_ops(void **state)
{
    enum { KEYS = 40 };
    int model[KEYS]; /* value, or -1 when absent */
    int order[KEYS], n = 0;
    for (int i = 0; i < KEYS; i++)
        model[i] = -1;
    rs_value *m = rs_value_map();
    unsigned seed = 12345;
    char key[16];
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) % KEYS);
        /* Bias towards removing when big, adding when small, to cross 8 entries often. */
        bool add = ((seed >> 8) % 18) >= (unsigned)n;
        snprintf(key, sizeof key, "%d", k);
        if (add) {
            assert_ok(rs_map_set(m, key, rs_value_int(step)));
            if (model[k] < 0)
                order[n++] = k;
            model[k] = step;
        } else {
            assert_rs(model[k] < 0 ? RS_ENOENT : 0, rs_map_remove(m, key, strlen(key)));
            if (model[k] >= 0) {
                int j = 0;
                while (order[j] != k)
                    j++;
                memmove(&order[j], &order[j + 1], (size_t)(n - j - 1) * sizeof *order);
                n--;
                model[k] = -1;
            }
        }
        assert_int_equal(rs_map_len(m), n);
        for (int i = 0; i < KEYS; i++) {
            snprintf(key, sizeof key, "%d", i);
            rs_value *v = rs_map_get(m, key);
            if (model[i] < 0)
                assert_null(v);
            else
                assert_int_equal(rs_value_get_int(v), model[i]);
        }
        for (int j = 0; j < n; j++) {
            snprintf(key, sizeof key, "%d", order[j]);
            assert_string_equal(rs_map_key(m, (size_t)j, NULL), key);
        }
    }
    rs_value_destroy(m);
}

/* ---- copy and equality ------------------------------------------------------------------- */

static void test_copy_equal(void **state)
{
    rs_value *t = sample_tree();
    rs_value *c = rs_value_copy(t);
    assert_non_null(c);
    assert_ptr_not_equal(c, t);
    assert_true(rs_value_equal(t, c));
    assert_true(rs_value_equal(t, t));
    assert_int_equal(rs_value_get_int(rs_map_get(rs_map_get(c, "big"), "k19")), 19);

    /* A change deep inside is seen. */
    rs_value *inner = rs_map_get(c, "chain");
    while (rs_value_type(rs_array_get(inner, 0)) == RS_TARRAY)
        inner = rs_array_get(inner, 0);
    assert_ok(rs_array_set(inner, 0, rs_value_string("bottoM")));
    assert_false(rs_value_equal(t, c));
    assert_ok(rs_array_set(inner, 0, rs_value_string("bottom")));
    assert_true(rs_value_equal(t, c));
    assert_ok(rs_array_push(rs_map_get(c, "list"), rs_value_null()));
    assert_false(rs_value_equal(t, c));
    rs_value_destroy(c);

    /* int 1 and double 1.0 differ; doubles compare with == (NaN != NaN, 0.0 == -0.0). */
    rs_value *one = rs_value_int(1), *onef = rs_value_double(1.0);
    rs_value *nan1 = rs_value_double(NAN), *nan2 = rs_value_double(NAN);
    rs_value *zero = rs_value_double(0.0), *negzero = rs_value_double(-0.0);
    assert_false(rs_value_equal(one, onef));
    assert_false(rs_value_equal(nan1, nan2));
    assert_true(rs_value_equal(zero, negzero));
    assert_false(rs_value_equal(one, NULL));
    assert_true(rs_value_equal(NULL, NULL));

    /* Maps are equal only with the same keys in the same order. */
    rs_value *m1 = rs_value_map(), *m2 = rs_value_map();
    assert_ok(rs_map_set(m1, "x", rs_value_int(1)));
    assert_ok(rs_map_set(m1, "y", rs_value_int(2)));
    assert_ok(rs_map_set(m2, "y", rs_value_int(2)));
    assert_ok(rs_map_set(m2, "x", rs_value_int(1)));
    assert_false(rs_value_equal(m1, m2));
    assert_ok(rs_map_remove(m2, "y", 1));
    assert_ok(rs_map_set(m2, "y", rs_value_int(2)));
    assert_true(rs_value_equal(m1, m2));
    assert_ok(rs_map_set(m2, "y", rs_value_int(3)));
    assert_false(rs_value_equal(m1, m2));

    /* An empty array and an empty map differ. */
    rs_value *ea = rs_value_array(), *em = rs_value_map();
    assert_false(rs_value_equal(ea, em));

    rs_value *all[] = {t, one, onef, nan1, nan2, zero, negzero, m1, m2, ea, em};
    for (size_t i = 0; i < RS__ARRAY_SIZE(all); i++)
        rs_value_destroy(all[i]);
}

/* A million levels, alternating arrays and maps: copy, equal and destroy must not recurse. */
static void test_deep_million(void **state)
{
    enum { DEPTH = 1000000 };
    rs_value *v = rs_value_int(7);
    for (int i = 0; i < DEPTH; i++) {
        rs_value *c = i % 2 ? rs_value_map() : rs_value_array();
        assert_non_null(c);
        if (i % 2)
            assert_ok(rs_map_set(c, "k", v));
        else
            assert_ok(rs_array_push(c, v));
        v = c;
    }
    rs_value *copy = rs_value_copy(v);
    assert_non_null(copy);
    assert_true(rs_value_equal(v, copy));

    /* Change the bottom of the copy: equality has to go all the way down to see it. */
    rs_value *parent = copy;
    for (int i = 0; i < DEPTH - 1; i++)
        parent =
            rs_value_type(parent) == RS_TMAP ? rs_map_value(parent, 0) : rs_array_get(parent, 0);
    assert_int_equal(rs_value_type(parent), RS_TARRAY);
    assert_int_equal(rs_value_get_int(rs_array_get(parent, 0)), 7);
    assert_ok(rs_array_set(parent, 0, rs_value_int(8)));
    assert_false(rs_value_equal(v, copy));

    rs_value_destroy(copy);
    rs_value_destroy(v);
}

/* ---- out of memory ----------------------------------------------------------------------- */

static void test_oom_copy(void **state)
{
    rs_value *t = sample_tree();
    long n;
    for (n = 0;; n++) {
        rs__test_fail_allocations_after(n);
        rs_value *c = rs_value_copy(t);
        rs__test_fail_allocations_after(-1);
        if (c) {
            assert_true(rs_value_equal(t, c));
            rs_value_destroy(c);
            break;
        }
    }
    assert_true(n > 100); /* every node of the tree was a failure point */
    rs_value_destroy(t);
}

/* SipHash-2-4 against the reference vectors (key 00..0f, message 00..len-1), which checks the
 * rounds that SipHash-1-3 shares; and the map hash is keyed, not under an all-zero key. */
static void test_siphash(void **state)
{
    (void)state;
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    assert_true(rs__siphash(2, 4, key, msg, 0) == 0x726fdb47dd0e0e31u);
    assert_true(rs__siphash(2, 4, key, msg, 15) == 0xa129ca6149be45e5u);
    uint8_t zero[16] = {0};
    const char *k = "runspace";
    assert_true(rs__hash_key(k, 8) == rs__hash_key(k, 8));
    assert_true(rs__hash_key(k, 8) != rs__siphash(1, 3, zero, k, 8));
    assert_true(rs__hash_key(k, 8) != rs__hash_key(k, 7));
}

static void test_oom_build(void **state)
{
    rs__test_fail_allocations_after(0);
    assert_null(rs_value_int(1));
    assert_null(rs_value_double(1));
    assert_null(rs_value_string("x"));
    assert_null(rs_value_array());
    assert_null(rs_value_map());
    assert_non_null(rs_value_null());
    assert_non_null(rs_value_bool(false));
    rs__test_fail_allocations_after(-1);

    /* Growing an array fails: the item is freed, the array unchanged. */
    rs_value *a = rs_value_array();
    for (int i = 0; i < 4; i++)
        assert_ok(rs_array_push(a, rs_value_int(i)));
    rs_value *item = rs_value_int(4);
    rs__test_fail_allocations_after(0);
    assert_rs(RS_ENOMEM, rs_array_push(a, item));
    assert_rs(RS_ENOMEM, rs__array_reserve(a, 1));
    rs__test_fail_allocations_after(-1);
    assert_int_equal(rs_array_len(a), 4);
    assert_rs(RS_ENOMEM, rs__array_reserve(a, (size_t)-1 / 2));

    /* A map with 8 entries fails to grow its entries, then its first index; capacity won by
     * a failed attempt stays, so the third attempt succeeds. */
    rs_value *m = rs_value_map();
    char key[16];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof key, "%d", i);
        assert_ok(rs_map_set(m, key, rs_value_int(i)));
    }
    long n;
    for (n = 0;; n++) {
        item = rs_value_int(8);
        rs__test_fail_allocations_after(n);
        int rc = rs_map_set(m, "8", item);
        rs__test_fail_allocations_after(-1);
        if (rc == 0)
            break;
        assert_rs(RS_ENOMEM, rc);
        assert_int_equal(rs_map_len(m), 8);
        assert_null(rs_map_get(m, "8"));
        assert_int_equal(rs_value_get_int(rs_map_get(m, "7")), 7);
    }
    assert_int_equal(n, 2);
    assert_int_equal(rs_value_get_int(rs_map_get(m, "8")), 8);

    /* With room reserved, only the key copy can fail. */
    assert_ok(rs__map_reserve(m, 1));
    item = rs_value_int(9);
    rs__test_fail_allocations_after(0);
    assert_rs(RS_ENOMEM, rs_map_set(m, "9", item));
    rs__test_fail_allocations_after(-1);
    assert_int_equal(rs_map_len(m), 9);
    assert_null(rs_map_get(m, "9"));

    /* Replacing needs no memory. */
    item = rs_value_int(-1);
    rs__test_fail_allocations_after(0);
    assert_ok(rs_map_set(m, "3", item));
    assert_ok(rs_map_remove(m, "0", 1));
    rs__test_fail_allocations_after(-1);
    assert_int_equal(rs_value_get_int(rs_map_value(m, 2)), -1);
    assert_rs(RS_ENOMEM, rs__map_reserve(m, (size_t)-1 / 2));

    rs_value_destroy(a);
    rs_value_destroy(m);
}

/* ---- threads ----------------------------------------------------------------------------- */

typedef struct reader_job {
    const rs_value *tree;
    bool ok;
} reader_job;

static void *reader(void *arg)
{
    reader_job *job = arg;
    job->ok = true;
    for (int i = 0; i < 50; i++) {
        rs_value *c = rs_value_copy(job->tree);
        job->ok = job->ok && c && rs_value_equal(job->tree, c);
        job->ok = job->ok && rs_map_get(job->tree, "k7") && rs_map_len(job->tree) == 20;
        rs_value_destroy(c);
    }
    return NULL;
}

/* Copy, equality and lookups only read the tree, so many threads may share one (ThreadSanitizer
 * checks that nothing is written behind const). */
static void test_concurrent_readers(void **state)
{
    rs_value *t = sample_tree();
    rs_value *big = rs_map_get(t, "big");
    pthread_t threads[4];
    reader_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (reader_job){big, false};
        assert_int_equal(pthread_create(&threads[i], NULL, reader, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_true(jobs[i].ok);
    }
    rs_value_destroy(t);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scalars),        cmocka_unit_test(test_singletons),
    cmocka_unit_test(test_binary_strings), cmocka_unit_test(test_array_ops),
    cmocka_unit_test(test_map_ops),        cmocka_unit_test(test_map_10000_keys),
    cmocka_unit_test(test_map_random_ops), cmocka_unit_test(test_copy_equal),
    cmocka_unit_test(test_deep_million),   cmocka_unit_test(test_oom_copy),
    cmocka_unit_test(test_oom_build),      cmocka_unit_test(test_concurrent_readers),
    cmocka_unit_test(test_siphash),
};

RS_TEST_MAIN(tests)
