/*
 * ptrset.c -- a set of addresses (see ptrset.h).
 */
#include "ptrset.h"

#include "common.h"

#include <stdint.h>
#include <string.h>

static size_t slot_of(const void *p, size_t cap)
{
    /* Fibonacci hashing of the address, whose low bits are alignment. */
    return (size_t)((((uintptr_t)p >> 4) * (uint64_t)0x9e3779b97f4a7c15u) % cap);
}

static int grow(rs__ptrset *s)
{
    if (s->cap == 0) {
        s->slots = s->small; /* zeroed with the set */
        s->cap = RS__PTRSET_SMALL;
        return 0;
    }
    size_t cap = 4 * s->cap;
    const void **slots = rs__calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i])
            continue;
        size_t j = slot_of(s->slots[i], cap);
        while (slots[j])
            j = (j + 1) % cap;
        slots[j] = s->slots[i];
    }
    if (s->slots != s->small)
        rs__free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int rs__ptrset_add(rs__ptrset *s, const void *p)
{
    if (2 * (s->len + 1) > s->cap && grow(s))
        return -1;
    size_t j = slot_of(p, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == p)
            return 0;
        j = (j + 1) % s->cap;
    }
    s->slots[j] = p;
    s->len++;
    return 1;
}

void rs__ptrset_free(rs__ptrset *s)
{
    if (s->slots != s->small)
        rs__free(s->slots);
    s->slots = NULL;
    s->cap = s->len = 0;
    memset(s->small, 0, sizeof s->small);
}
