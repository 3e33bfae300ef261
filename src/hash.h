/*
 * hash.h -- keyed hashing of map keys. Keys reach maps from untrusted input (JSON objects,
 * script tables), so their hash is SipHash under a key drawn at random once per process:
 * someone who does not know the key cannot choose keys that all land in one slot and turn
 * the maps' O(1) lookups into O(n).
 */
#ifndef RS_HASH_H
#define RS_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-c-d of data under the 16-byte key (c compression, d finalisation rounds). */
uint64_t rs__siphash(int c, int d, const uint8_t key[16], const void *data, size_t len);

/* The hash of a map key: SipHash-1-3 under the process's random key. */
uint64_t rs__hash_key(const char *key, size_t len);

#endif
