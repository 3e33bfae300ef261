/*
 * queue.h -- an intrusive circular doubly-linked list: O(1) insert and unlink of a node
 * embedded in any struct, with no allocation. The head is a node of its own; an empty list's
 * head points to itself.
 */
#ifndef RS_QUEUE_H
#define RS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rs__qnode {
    struct rs__qnode *next;
    struct rs__qnode *prev;
} rs__qnode;

#define RS__QUEUE_DATA(node, type, field) ((type *)((char *)(node)-offsetof(type, field)))

static inline void rs__queue_init(rs__qnode *q)
{
    q->next = q->prev = q;
}

static inline bool rs__queue_empty(const rs__qnode *q)
{
    return q->next == q;
}

static inline void rs__queue_insert_tail(rs__qnode *q, rs__qnode *n)
{
    n->next = q;
    n->prev = q->prev;
    q->prev->next = n;
    q->prev = n;
}

static inline void rs__queue_insert_head(rs__qnode *q, rs__qnode *n)
{
    n->next = q->next;
    n->prev = q;
    q->next->prev = n;
    q->next = n;
}

/* Unlinks n and leaves it pointing at itself, so rs__queue_linked can tell. */
static inline void rs__queue_remove(rs__qnode *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

static inline bool rs__queue_linked(const rs__qnode *n)
{
    return n->next != n;
}

static inline rs__qnode *rs__queue_head(const rs__qnode *q)
{
    return q->next;
}

#define RS__QUEUE_FOREACH(n, q) for ((n) = (q)->next; (n) != (q); (n) = (n)->next)

#endif
