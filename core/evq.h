/*
 * evq.h: a bounded FIFO of events (the daemon's accept queue and each
 * channel's delivery queue). The ring grows on demand up to its capacity,
 * so an idle queue costs little; it holds one reference per event.
 * Loop thread only.
 */
#ifndef OG_CORE_EVQ_H
#define OG_CORE_EVQ_H

#include <stddef.h>

#include "event.h"

typedef struct og__evq_s {
    og_event_t **ring;
    size_t alloc; /* slots allocated */
    size_t cap;   /* bound */
    size_t head;
    size_t len;
    size_t bytes; /* envelope bytes held */
} og__evq_t;

/* Makes room for one more event (alloc < cap); out of line, rare. */
void og__evq_grow(og__evq_t *q);
/* Drops every event and the ring. */
void og__evq_clear(og__evq_t *q);

static inline void og__evq_init(og__evq_t *q, size_t cap)
{
    q->ring = NULL;
    q->alloc = q->head = q->len = q->bytes = 0;
    q->cap = cap;
}

/* Appends ev with a new reference; returns 0, or -1 when full. */
static inline int og__evq_push(og__evq_t *q, og_event_t *ev)
{
    if (q->len == q->cap)
        return -1;
    if (q->len == q->alloc)
        og__evq_grow(q);
    q->ring[(q->head + q->len) % q->alloc] = og__event_ref(ev);
    q->len++;
    q->bytes += ev->len;
    return 0;
}

/* Removes the oldest event and hands over its reference (queue not
 * empty). */
static inline og_event_t *og__evq_pop(og__evq_t *q)
{
    og_event_t *ev = q->ring[q->head];

    q->ring[q->head] = NULL;
    q->head = (q->head + 1) % q->alloc;
    q->len--;
    q->bytes -= ev->len;
    return ev;
}

#endif /* OG_CORE_EVQ_H */
