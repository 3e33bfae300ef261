/*
 * ptrset.h -- a set of addresses (open addressing), to tell the tables a copy has met already
 * from those it meets for the first time.
 */
#ifndef RS_PTRSET_H
#define RS_PTRSET_H

#include <stddef.h>

/* The slots a set starts with, inside it: a copy that meets a few tables allocates nothing. */
#define RS__PTRSET_SMALL 16

/* Starts zeroed ((rs__ptrset){0}); once used it must not be moved (it may point into itself). */
typedef struct rs__ptrset {
    const void **slots; /* small, or allocated once it outgrew it */
    size_t cap, len;
    const void *small[RS__PTRSET_SMALL];
} rs__ptrset;

/* Adds p (not NULL): 1 when it is new, 0 when it was there, -1 when out of memory. */
int rs__ptrset_add(rs__ptrset *s, const void *p);
/* Frees the set's memory; it is then empty. */
void rs__ptrset_free(rs__ptrset *s);

#endif
