/*
 * sha256.h -- SHA-256 (FIPS 180-4), for the digests that name a for-each run in its journal
 * header: the script, its arguments and parameters, and the session state.
 */
#ifndef RS_SHA256_H
#define RS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct rs__sha256 {
    uint32_t h[8];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* the partial block */
    size_t used;       /* bytes in block */
} rs__sha256;

void rs__sha256_init(rs__sha256 *s);
void rs__sha256_update(rs__sha256 *s, const void *data, size_t len);
/* Finishes the digest into out (32 bytes); s must be initialised again before reuse. */
void rs__sha256_final(rs__sha256 *s, uint8_t out[32]);
/* The digest of data as "sha256:" and 64 lowercase hex digits, into out (72 bytes). */
void rs__sha256_hex(const void *data, size_t len, char out[72]);
/* Finishes s into out (72 bytes) as rs__sha256_hex writes it. */
void rs__sha256_final_hex(rs__sha256 *s, char out[72]);

#endif
