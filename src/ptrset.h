/*
 * ptrset.h -- a set of addresses (open addressing), to tell the tables a copy has met already
 * from those it meets for the first time.
 */
#ifndef RS_PTRSET_H
#define RS_PTRSET_H

#include <stddef.h>

typedef struct rs__ptrset {
    const void **slots;
    size_t cap, len;
} rs__ptrset;

/* Adds p (not NULL): 1 when it is new, 0 when it was there, -1 when out of memory. */
int rs__ptrset_add(rs__ptrset *s, const void *p);
/* Frees the set's memory; it is then empty. */
void rs__ptrset_free(rs__ptrset *s);

#endif
