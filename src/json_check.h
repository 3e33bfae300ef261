/*
 * json_check.h -- whether a text is one JSON value that rs_json_decode takes, checked
 * without building it (see json_check.c for the rules).
 */
#ifndef RS_JSON_CHECK_H
#define RS_JSON_CHECK_H

#include "common.h"

/* True when text[0..len) is one JSON value, with blanks around it, that rs_json_decode
 * would take. Otherwise false, with *at (may be NULL) the byte offset of the trouble and
 * *what (may be NULL) a static phrase naming it ("a byte that is not valid UTF-8"). No
 * allocation; thread-safe. */
bool rs__json_check(const char *text, size_t len, size_t *at, const char **what);

/* True when text[0..len) starts with one JSON value (after blanks) that rs_json_decode would
 * take, by the same rules, with *used the bytes up to its end; what follows is not looked
 * at. A text made of such values and the punctuation between them is valid as a whole. */
bool rs__json_check_prefix(const char *text, size_t len, size_t *used);

/* True when text[0..len) is valid UTF-8 (by the same rules); otherwise false with *at the
 * offset of the first byte that is not part of valid UTF-8. NUL bytes are valid. */
bool rs__json_check_utf8(const char *text, size_t len, size_t *at);

#endif
