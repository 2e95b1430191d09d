/*
 * router.h: routes compiled from [route] sections. A route matches an event
 * by type pattern (exact or glob: "order.*"), optionally by source instance
 * (names or globs: "pos-*") and by conditions on its fields ("when"); its
 * targets are channel instance names.
 */
#ifndef OG_CORE_ROUTER_H
#define OG_CORE_ROUTER_H

#include <stddef.h>

#include "conf.h"
#include "event.h"

typedef struct og__router_s og__router_t;
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

/* Compiles the routes of conf; the router keeps its own copies. conf's
 * routes must have been validated (og__conf_load()). Targets that are
 * disabled channels are left out. */
og__router_t *og__router_create(const og__conf_t *conf);
/* Routers are reference counted (on the loop thread): a reference keeps
 * one usable, read-only, by a worker thread after a reload replaced it.
 * og__router_free() drops a reference. */
og__router_t *og__router_ref(og__router_t *r);
void og__router_free(og__router_t *r);

/*
 * og__router_targets: the distinct target instances for ev, never its
 * source itself. Writes up to max names (owned by the router, valid until
 * it is freed) and returns how many matched in all.
 */
size_t og__router_targets(const og__router_t *r, const og_event_t *ev,
                          const char **out, size_t max);

#endif /* OG_CORE_ROUTER_H */
