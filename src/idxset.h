/*
 * idxset.h -- a set of indexes whose memory follows the gaps between them, not their number:
 * the indexes a resumed for-each run skips, and those a journal reader has seen.
 */
#ifndef RS_IDXSET_H
#define RS_IDXSET_H

#include "common.h"

/* The highest index a set takes: its table of chunks grows to the highest index / 32,768
 * entries, so a stray huge index must not make it allocate without end. */
#define RS__IDXSET_MAX ((uint64_t)1 << 36)

struct rs__idxchunk;

/* Zero-initialised: empty. One thread at a time; readers may share a set no one changes. */
typedef struct rs__idxset {
    struct rs__idxchunk **chunks;
    size_t n;
    uint64_t count; /* indexes in the set */
    size_t bytes;   /* of memory it holds (its table and its chunks), for tests and figures */
} rs__idxset;

bool rs__idxset_has(const rs__idxset *s, uint64_t i);
/* Adds (on) or removes index i (at most RS__IDXSET_MAX). 0 or RS_ENOMEM. */
int rs__idxset_put(rs__idxset *s, uint64_t i, bool on);
/* The first index at or after i that is not in s. */
uint64_t rs__idxset_next_absent(const rs__idxset *s, uint64_t i);
/* Frees what s holds; s is empty again. */
void rs__idxset_free(rs__idxset *s);

#endif
