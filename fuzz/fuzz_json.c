/*
 * fuzz_json.c -- rs_json_decode on arbitrary bytes, and the round trip of what it accepts.
 *
 * Contracts checked (runspace.h):
 *  - decoding fails only with RS_EJSON (or RS_ENOMEM), with err filled: the same code, a
 *    message, and a position inside the text;
 *  - a decoded value encodes, in every flag combination, to NUL-free text that decodes to an
 *    equal value (jansson refuses invalid UTF-8 and overflowing numbers, so nothing it accepts
 *    is unencodable);
 *  - encoding is stable: decode(encode(v)) encodes to the very same bytes;
 *  - rs_json_encode_stream hands on the very text rs_json_encode makes, in pieces.
 */
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

/* Appends a streamed piece to a buffer (fuzz inputs are small). */
typedef struct pieces {
    char *text;
    size_t len;
} pieces;

static int gather(const char *data, size_t len, void *ud)
{
    pieces *p = ud;
    char *t = realloc(p->text, p->len + len);
    FUZZ_CHECK(t != NULL, "out of memory");
    memcpy(t + p->len, data, len);
    p->text = t;
    p->len += len;
    return 0;
}

static void round_trip(const rs_value *v, unsigned flags)
{
    char *text = NULL;
    size_t len = 0;
    rs_errinfo err;
    int rc = rs_json_encode(v, flags, &text, &len, &err);
    FUZZ_CHECK(rc == 0, "encode (flags %u) failed: %s: %s", flags, rs_err_name(rc), err.message);
    FUZZ_CHECK(text && strlen(text) == len, "encoded text of length %zu has a NUL at %zu", len,
               strlen(text));
    pieces streamed = {NULL, 0};
    rc = rs_json_encode_stream(v, flags, gather, &streamed, &err);
    FUZZ_CHECK(rc == 0 && streamed.len == len && memcmp(streamed.text, text, len) == 0,
               "streamed text differs (flags %u): %s", flags, rs_err_name(rc));
    free(streamed.text);

    rs_value *back = NULL;
    rc = rs_json_decode(text, len, &back, &err);
    FUZZ_CHECK(rc == 0, "our own output does not decode (flags %u): %s at %zu: %s\n%s", flags,
               rs_err_name(rc), err.position, err.message, text);
    FUZZ_CHECK(rs_value_equal(v, back), "round trip changed the value (flags %u):\n%s", flags,
               text);

    char *again = NULL;
    size_t again_len = 0;
    rc = rs_json_encode(back, flags, &again, &again_len, &err);
    FUZZ_CHECK(rc == 0, "re-encode failed: %s", err.message);
    FUZZ_CHECK(again_len == len && memcmp(text, again, len) == 0,
               "encoding is not stable (flags %u):\n%s\n%s", flags, text, again);
    rs_free(again);
    rs_value_destroy(back);
    rs_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rs_value *v = NULL;
    rs_errinfo err;
    memset(&err, 0, sizeof err);
    int rc = rs_json_decode((const char *)data, size, &v, &err);
    if (rc) {
        FUZZ_CHECK(rc == RS_EJSON || rc == RS_ENOMEM, "unexpected error %s", rs_err_name(rc));
        FUZZ_CHECK(v == NULL, "a failed decode left a value");
        FUZZ_CHECK(err.code == rc, "err.code %d, returned %d", err.code, rc);
        FUZZ_CHECK(err.message[0] != '\0', "no message");
        FUZZ_CHECK(err.position <= size, "position %zu past the end (%zu)", err.position, size);
        FUZZ_CHECK(err.line >= 0 && err.column >= 0, "line %d column %d", err.line, err.column);
        return 0;
    }
    FUZZ_CHECK(v != NULL, "decode returned 0 without a value");
    static const unsigned flags[] = {0, RS_JSON_PRETTY, RS_JSON_ASCII,
                                     RS_JSON_PRETTY | RS_JSON_ASCII};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        round_trip(v, flags[i]);

    /* A deep copy is equal and independent. */
    rs_value *copy = rs_value_copy(v);
    FUZZ_CHECK(copy && rs_value_equal(v, copy), "copy differs");
    rs_value_destroy(v);
    rs_value_destroy(copy);
    return 0;
}
