/*
 * test_sha256.c -- SHA-256 against the test vectors of FIPS 180-4's examples (NIST CSRC),
 * and the same digest whatever the pieces the message is fed in.
 */
#include "util.h"

#include "sha256.h"

static void check(const char *msg, size_t len, const char *want)
{
    char got[72];
    rs__sha256_hex(msg, len, got);
    if (strcmp(got + 7, want) != 0)
        fail_msg("sha256 of %zu bytes: got %s, expected %s", len, got + 7, want);
    assert_memory_equal(got, "sha256:", 7);
}

static void test_vectors(void **state)
{
    (void)state;
    check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
                       "jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check(four, strlen(four), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    check(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

static void test_pieces(void **state)
{
    (void)state;
    /* Every length from 0 to 200 (all the padding cases: 55, 56, 63, 64 bytes in the last
     * block), fed whole and in pieces of every size from 1 to 70: the digests agree. */
    unsigned char msg[200];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof msg; len++) {
        char whole[72];
        rs__sha256_hex(msg, len, whole);
        for (size_t piece = 1; piece <= 70; piece++) {
            rs__sha256 s;
            rs__sha256_init(&s);
            for (size_t at = 0; at < len; at += piece)
                rs__sha256_update(&s, msg + at, len - at < piece ? len - at : piece);
            char got[72];
            rs__sha256_final_hex(&s, got);
            if (strcmp(got, whole) != 0)
                fail_msg("length %zu in pieces of %zu: %s, whole: %s", len, piece, got, whole);
        }
    }
    /* And the whole pattern, checked against Python's hashlib. */
    check((const char *)msg, sizeof msg,
          "5e48d64839a8bff5e2471507af6a49f9990817df437857f4a2007df41266e1b5");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_vectors),
    cmocka_unit_test(test_pieces),
};

RS_TEST_MAIN(tests)
