/*
 * arena.c -- segregated free lists for the small objects of one Lua state.
 *
 * A Lua state allocates hundreds of small objects when it opens and many short-lived ones while
 * it runs, always from one thread, and Lua passes the size of every block it frees. So blocks
 * up to 512 bytes are served from 16 KiB chunks in 16-byte size classes: an allocation pops its
 * class's free list or bumps the newest chunk, a free pushes the block back, and closing the
 * state releases the chunks wholesale. No locks, no headers, no searching; compared with the
 * general-purpose allocator this cuts the cost of opening a runspace noticeably and keeps a
 * runspace's objects together. Memory in a chunk is reused by its own runspace only, until the
 * runspace closes (or is replaced after running out of memory).
 */
#include "arena.h"

#define CHUNK_SIZE (16 * 1024)
#define CHUNK_HEADER 16 /* the link to the previous chunk, keeping blocks 16-byte aligned */

static inline size_t class_of(size_t size)
{
    return (size - 1) / 16;
}

void *rs__arena_alloc(rs__arena *a, size_t size)
{
    size_t c = class_of(size);
    void *p = a->free[c];
    if (p) {
        a->free[c] = *(void **)p;
        return p;
    }
    size_t block = (c + 1) * 16;
    if ((size_t)(a->end - a->bump) < block) {
        /* The tail of the old chunk goes to the free list of the largest class it fits. */
        size_t rest = (size_t)(a->end - a->bump);
        if (rest >= 16) {
            size_t rc = class_of(rest - rest % 16);
            *(void **)a->bump = a->free[rc];
            a->free[rc] = a->bump;
        }
        char *chunk = rs__malloc(CHUNK_SIZE);
        if (!chunk)
            return NULL;
        *(void **)chunk = a->chunks;
        a->chunks = chunk;
        a->bump = chunk + CHUNK_HEADER;
        a->end = chunk + CHUNK_SIZE;
    }
    p = a->bump;
    a->bump += block;
    return p;
}

void rs__arena_free(rs__arena *a, void *p, size_t size)
{
    size_t c = class_of(size);
    *(void **)p = a->free[c];
    a->free[c] = p;
}

void rs__arena_release(rs__arena *a)
{
    void *chunk = a->chunks;
    while (chunk) {
        void *prev = *(void **)chunk;
        rs__free(chunk);
        chunk = prev;
    }
    for (size_t i = 0; i < RS__ARENA_CLASSES; i++)
        a->free[i] = NULL;
    a->bump = a->end = NULL;
    a->chunks = NULL;
}
