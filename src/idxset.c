/*
 * idxset.c -- a set of indexes in chunks of 32,768 (4 KiB of bits): a chunk is absent (none of
 * its indexes), a marker (all of them), or a bitmap with its count. A chunk that fills up is
 * freed for the marker, and one that empties is freed, so memory follows the chunks that are
 * partly filled: the gaps. Ten million indexes in a row take a table of 306 pointers.
 */
#include "idxset.h"

#include <string.h>

#define CHUNK_SHIFT 15
#define CHUNK_SIZE ((uint64_t)1 << CHUNK_SHIFT)

struct rs__idxchunk {
    uint32_t count;
    uint64_t bits[CHUNK_SIZE / 64];
};

static struct rs__idxchunk full_chunk; /* the marker of a full chunk; never read or written */
#define FULL (&full_chunk)

bool rs__idxset_has(const rs__idxset *s, uint64_t i)
{
    uint64_t c = i >> CHUNK_SHIFT;
    if (c >= s->n || !s->chunks[c])
        return false;
    if (s->chunks[c] == FULL)
        return true;
    return s->chunks[c]->bits[(i & (CHUNK_SIZE - 1)) >> 6] >> (i & 63) & 1;
}

int rs__idxset_put(rs__idxset *s, uint64_t i, bool on)
{
    if (i > RS__IDXSET_MAX)
        return RS_EINVAL;
    size_t c = (size_t)(i >> CHUNK_SHIFT);
    if (c >= s->n) {
        if (!on)
            return 0;
        size_t n = s->n ? s->n : 16;
        while (n <= c)
            n *= 2;
        struct rs__idxchunk **chunks = rs__realloc(s->chunks, n * sizeof *chunks);
        if (!chunks)
            return RS_ENOMEM;
        memset(chunks + s->n, 0, (n - s->n) * sizeof *chunks);
        s->chunks = chunks;
        s->n = n;
    }
    struct rs__idxchunk *k = s->chunks[c];
    if (!k || k == FULL) {
        if (on == (k == FULL))
            return 0;
        k = rs__malloc(sizeof *k);
        if (!k)
            return RS_ENOMEM;
        bool was_full = s->chunks[c] == FULL;
        memset(k->bits, was_full ? 0xff : 0, sizeof k->bits);
        k->count = was_full ? (uint32_t)CHUNK_SIZE : 0;
        s->chunks[c] = k;
    }
    uint64_t *w = &k->bits[(i & (CHUNK_SIZE - 1)) >> 6];
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (on && !(*w & bit)) {
        *w |= bit;
        s->count++;
        if (++k->count == CHUNK_SIZE) {
            rs__free(k);
            s->chunks[c] = FULL;
        }
    } else if (!on && (*w & bit)) {
        *w &= ~bit;
        s->count--;
        if (--k->count == 0) {
            rs__free(k);
            s->chunks[c] = NULL;
        }
    }
    return 0;
}

uint64_t rs__idxset_next_absent(const rs__idxset *s, uint64_t i)
{
    while (rs__idxset_has(s, i)) {
        if (s->chunks[i >> CHUNK_SHIFT] == FULL)
            i = ((i >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
        else
            i++;
    }
    return i;
}

void rs__idxset_free(rs__idxset *s)
{
    for (size_t c = 0; c < s->n; c++) {
        if (s->chunks[c] != FULL)
            rs__free(s->chunks[c]);
    }
    rs__free(s->chunks);
    memset(s, 0, sizeof *s);
}
