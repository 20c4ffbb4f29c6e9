/*
 * list.h — intrusive lists: the node lives inside the struct that is queued, so
 * queueing never allocates. A circular doubly-linked list (O(1) removal from anywhere)
 * and a singly-linked FIFO (the run queue: push at the tail, pop at the head).
 */
#ifndef GREEN_LIST_H
#define GREEN_LIST_H

#include <stddef.h>

#define green_container_of(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))

struct green_list {
    struct green_list *prev, *next;
};

static inline void green_list_init(struct green_list *h) { h->prev = h->next = h; }
static inline int green_list_empty(const struct green_list *h) { return h->next == h; }

static inline void green_list_push_back(struct green_list *h, struct green_list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void green_list_push_front(struct green_list *h, struct green_list *n)
{
    green_list_push_back(h->next, n); /* before the first */
}

static inline void green_list_remove(struct green_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline struct green_list *green_list_pop_front(struct green_list *h)
{
    struct green_list *n = h->next;
    if (n == h)
        return NULL;
    green_list_remove(n);
    return n;
}

/* Move every node of `from` to the back of `to`, keeping their order. */
static inline void green_list_splice_back(struct green_list *to, struct green_list *from)
{
    if (green_list_empty(from))
        return;
    struct green_list *first = from->next, *last = from->prev;
    first->prev = to->prev;
    to->prev->next = first;
    last->next = to;
    to->prev = last;
    green_list_init(from);
}

#endif
