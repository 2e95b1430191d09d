/*
 * cond.h: the "when" condition language (route and journey conditions on
 * an event's fields).
 */
#ifndef OG_CORE_COND_H
#define OG_CORE_COND_H

#include <stddef.h>

#include "event/event.h"

typedef struct og__cond_s og__cond_t;

/*
 * og__conds_parse: compile a "when" expression: conditions joined by
 * " and ", each "PATH exists", "PATH missing" or "PATH OP VALUE" with OP one
 * of == != < <= > >= and VALUE a number, true/false, or text (bare or in
 * double quotes). Returns the conditions (free with og__conds_free()), or
 * NULL with the reason in why.
 */
og__cond_t *og__conds_parse(const char *expr, size_t *count, char *why,
                            size_t whylen);
void og__conds_free(og__cond_t *c, size_t count);
/* True when ev satisfies every condition. */
int og__conds_match(const og__cond_t *c, size_t count, const og_event_t *ev);
/* The same over any MessagePack tree (paths from its root). */
int og__conds_match_obj(const og__cond_t *c, size_t count,
                        const msgpack_object *root);

#endif /* OG_CORE_COND_H */
