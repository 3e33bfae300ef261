/*
 * value.h -- internal helpers for building rs_value trees in bulk (JSON decoding, the Lua
 * bridge). The public API is in runspace.h; the node layout stays private to value.c.
 */
#ifndef RS_VALUE_H
#define RS_VALUE_H

#include "common.h"
#include "sha256.h"

/* Makes room in arr for n more items, so that the next n rs_array_push calls cannot fail.
 * Returns 0, RS_EMISUSE when arr is not an array, or RS_ENOMEM (arr is unchanged then). */
int rs__array_reserve(rs_value *arr, size_t n);

/* Makes room in map for n more entries (the entry vector and the hash index), so that the
 * next n rs_map_setn calls only allocate their key copies. Returns 0, RS_EMISUSE when map
 * is not a map, or RS_ENOMEM (map keeps its entries then). */
int rs__map_reserve(rs_value *map, size_t n);

/* About how many heap bytes a node of type t takes, allocator overhead included: for a string
 * of n bytes; for an array or map of n items, with its slots but without its items (a map's
 * key bytes are extra). Used to charge values to a runspace's memory limit. */
size_t rs__value_cost(rs_type t, size_t n);

/* About how many heap bytes the whole tree v takes, by rs__value_cost. */
size_t rs__value_size(const rs_value *v);

/* Feeds v to the digest s in a serialisation that tells every two different values apart
 * (types, lengths and bytes; a map's keys in order). 0 or RS_ENOMEM (deep values need a
 * stack on the heap). */
int rs__value_digest(rs__sha256 *s, const rs_value *v);

#endif
