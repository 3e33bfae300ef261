/*
 * idxset.c -- a set of indexes in chunks of 32,768, each in the form that suits how full it
 * is (as compressed bitmaps do): absent (none of its indexes), a sorted array of the low 16
 * bits of its indexes (up to ARRAY_MAX of them: a sparse chunk takes a few bytes per index),
 * a bitmap with its count (4 KiB: a dense chunk), or a marker (all of them). A chunk turns
 * into a bitmap when its array would outgrow one, back into an array when it thins out, into
 * the marker when it fills up, and is freed when it empties. So memory follows the gaps:
 * ten million indexes in a row take a table of 306 pointers, and indexes far apart take
 * a few bytes each, never a bitmap each.
 */
#include "idxset.h"

#include <string.h>

#define CHUNK_SHIFT 15
#define CHUNK_SIZE ((uint64_t)1 << CHUNK_SHIFT)
#define WORDS (CHUNK_SIZE / 64)
#define ARRAY_MAX 2048u /* entries: 4 KiB, the size of a bitmap */
#define ARRAY_MIN 4u    /* the first array's room */

struct rs__idxchunk {
    uint32_t count;
    uint32_t cap;    /* room of an array chunk, in entries; 0 for a bitmap chunk */
    uint64_t bits[]; /* a bitmap: WORDS words; an array: cap uint16_t, sorted */
};

static struct rs__idxchunk full_chunk; /* the marker of a full chunk; never read or written */
#define FULL (&full_chunk)

static uint16_t *low_bits(struct rs__idxchunk *k)
{
    return (uint16_t *)(void *)k->bits;
}

static size_t chunk_bytes(const struct rs__idxchunk *k)
{
    return sizeof *k + (k->cap ? k->cap * sizeof(uint16_t) : WORDS * sizeof(uint64_t));
}

/* The position of low in array chunk k: where it is, or where it would go. */
static uint32_t find(struct rs__idxchunk *k, uint16_t low, bool *found)
{
    const uint16_t *a = low_bits(k);
    uint32_t lo = 0, hi = k->count;
    if (hi && a[hi - 1] < low) { /* appending in order, as a journal mostly is */
        *found = false;
        return hi;
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < low)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < k->count && a[lo] == low;
    return lo;
}

bool rs__idxset_has(const rs__idxset *s, uint64_t i)
{
    uint64_t c = i >> CHUNK_SHIFT;
    if (c >= s->n || !s->chunks[c])
        return false;
    struct rs__idxchunk *k = s->chunks[c];
    if (k == FULL)
        return true;
    uint16_t low = (uint16_t)(i & (CHUNK_SIZE - 1));
    if (k->cap) {
        bool found;
        find(k, low, &found);
        return found;
    }
    return k->bits[low >> 6] >> (low & 63) & 1;
}

/* A bitmap chunk with the indexes of array chunk k (or all of them, for FULL), in place of
 * it in slot c. */
static int to_bitmap(rs__idxset *s, size_t c)
{
    struct rs__idxchunk *k = s->chunks[c];
    struct rs__idxchunk *b = rs__malloc(sizeof *b + WORDS * sizeof(uint64_t));
    if (!b)
        return RS_ENOMEM;
    b->cap = 0;
    if (k == FULL) {
        memset(b->bits, 0xff, WORDS * sizeof(uint64_t));
        b->count = (uint32_t)CHUNK_SIZE;
    } else {
        memset(b->bits, 0, WORDS * sizeof(uint64_t));
        const uint16_t *a = low_bits(k);
        for (uint32_t x = 0; x < k->count; x++)
            b->bits[a[x] >> 6] |= (uint64_t)1 << (a[x] & 63);
        b->count = k->count;
        s->bytes -= chunk_bytes(k);
        rs__free(k);
    }
    s->bytes += chunk_bytes(b);
    s->chunks[c] = b;
    return 0;
}

/* An array chunk with room for cap entries, holding those of chunk k (array or bitmap; NULL
 * for none), in place of it in slot c. */
static int to_array(rs__idxset *s, size_t c, uint32_t cap)
{
    struct rs__idxchunk *k = s->chunks[c];
    struct rs__idxchunk *a = rs__malloc(sizeof *a + cap * sizeof(uint16_t));
    if (!a)
        return RS_ENOMEM;
    a->cap = cap;
    a->count = 0;
    if (k && k->cap) {
        memcpy(low_bits(a), low_bits(k), k->count * sizeof(uint16_t));
        a->count = k->count;
    } else if (k) {
        for (uint32_t w = 0; w < WORDS; w++) {
            for (uint64_t bits = k->bits[w]; bits; bits &= bits - 1)
                low_bits(a)[a->count++] = (uint16_t)(w * 64 + (unsigned)__builtin_ctzll(bits));
        }
    }
    if (k) {
        s->bytes -= chunk_bytes(k);
        rs__free(k);
    }
    s->bytes += chunk_bytes(a);
    s->chunks[c] = a;
    return 0;
}

static void drop_chunk(rs__idxset *s, size_t c)
{
    s->bytes -= chunk_bytes(s->chunks[c]);
    rs__free(s->chunks[c]);
    s->chunks[c] = NULL;
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
        s->bytes += (n - s->n) * sizeof *chunks;
        s->chunks = chunks;
        s->n = n;
    }
    uint16_t low = (uint16_t)(i & (CHUNK_SIZE - 1));
    struct rs__idxchunk *k = s->chunks[c];
    if (on ? k == FULL : !k)
        return 0;
    int rc = 0;
    if (!k)
        rc = to_array(s, c, ARRAY_MIN);
    else if (k == FULL)
        rc = to_bitmap(s, c);
    if (rc)
        return rc;
    k = s->chunks[c];
    if (k->cap) {
        bool found;
        uint32_t at = find(k, low, &found);
        if (found == on)
            return 0;
        uint16_t *a = low_bits(k);
        if (!on) {
            memmove(a + at, a + at + 1, (k->count - at - 1) * sizeof *a);
            s->count--;
            if (--k->count == 0)
                drop_chunk(s, c);
            return 0;
        }
        if (k->count == k->cap) {
            rc = k->cap >= ARRAY_MAX ? to_bitmap(s, c) : to_array(s, c, 2 * k->cap);
            if (rc)
                return rc;
            return rs__idxset_put(s, i, on); /* once more, in the new form */
        }
        memmove(a + at + 1, a + at, (k->count - at) * sizeof *a);
        a[at] = low;
        k->count++;
        s->count++;
        return 0;
    }
    uint64_t *w = &k->bits[low >> 6];
    uint64_t bit = (uint64_t)1 << (low & 63);
    if (on && !(*w & bit)) {
        *w |= bit;
        s->count++;
        if (++k->count == CHUNK_SIZE) {
            drop_chunk(s, c);
            s->chunks[c] = FULL;
        }
    } else if (!on && (*w & bit)) {
        *w &= ~bit;
        s->count--;
        if (--k->count == ARRAY_MAX / 4)
            return to_array(s, c, ARRAY_MAX / 2); /* thinned out: a few bytes per index again */
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
