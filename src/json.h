/*
 * json.h -- the JSON encoder for other modules (the Lua bindings), which need to append to
 * their own buffer and to name paths in their own terms.
 */
#ifndef RS_JSON_H
#define RS_JSON_H

#include "common.h"

/* Appends the JSON text of v (RS_JSON_* flags) to out. Error messages name the offending
 * value by a path that starts with root ("value", "output", ...) and numbers array items
 * from index_base (0 in C, 1 in Lua): "output[3].name: string is not valid UTF-8".
 * Returns 0, RS_EINVAL (v or out NULL, unknown flags), RS_EVALUE (NaN or infinite double,
 * string or key not valid UTF-8, nesting deeper than RS_MAX_DEPTH) or RS_ENOMEM, with err
 * (may be NULL) filled. On failure out->len is back to what it was before the call. */
int rs__json_encode_ex(const rs_value *v, unsigned flags, const char *root, int index_base,
                       rs__buf *out, rs_errinfo *err);

/* Called by a long encoding or decoding with the work done since its last call (a value, or a
 * KiB of text, counting one; about every 1024 of them): 0 to go on, or an error code that ends
 * the encoding or decoding with it (a stop, a timeout, a spent budget). */
typedef int (*rs__json_check_fn)(void *ud, uint64_t work);

/* rs__json_encode_ex, and rs_json_decode, with a check function (may be NULL). On a code from
 * check, the result is as on any failure (out as before; no value) and err is untouched. */
int rs__json_encode_checked(const rs_value *v, unsigned flags, const char *root, int index_base,
                            rs__buf *out, rs_errinfo *err, rs__json_check_fn check, void *ud);
int rs__json_decode_checked(const char *text, size_t len, rs_value **out, rs_errinfo *err,
                            rs__json_check_fn check, void *ud);

/* Writes x in decimal at out (room for 20 bytes; no NUL) and returns the number of digits. */
size_t rs__format_u64(char *out, uint64_t x);

/* Appends s[0..len) as a JSON string, each byte that is not part of valid UTF-8 as U+FFFD
 * (as RS_JSON_REPAIR does). 0 or RS_ENOMEM (out is as before then). */
int rs__json_encode_text(rs__buf *out, const char *s, size_t len);

/* An upper estimate of the C memory rs_json_decode takes for len bytes of text: the parser's
 * tree and the value tree, both alive at once. A linear scan, no allocation. */
size_t rs__json_decode_cost(const char *text, size_t len);

#endif
