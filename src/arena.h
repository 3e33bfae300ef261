/*
 * arena.h -- the small-object allocator behind each runspace's Lua heap.
 */
#ifndef RS_ARENA_H
#define RS_ARENA_H

#include "common.h"

/* Blocks up to this size come from the arena; larger ones from the library allocator. */
#define RS__ARENA_MAX 512
#define RS__ARENA_CLASSES (RS__ARENA_MAX / 16)

typedef struct rs__arena {
    void *free[RS__ARENA_CLASSES]; /* per size class, a list threaded through the free blocks */
    char *bump;                    /* the unused tail of the newest chunk */
    char *end;
    void *chunks; /* every chunk, linked through its first word */
} rs__arena;

/* A block of size bytes (1..RS__ARENA_MAX), or NULL when out of memory. */
void *rs__arena_alloc(rs__arena *a, size_t size);
/* Returns a block; size is the size it was allocated with. */
void rs__arena_free(rs__arena *a, void *p, size_t size);
/* Frees every chunk; the arena is empty and reusable afterwards. */
void rs__arena_release(rs__arena *a);

#endif
