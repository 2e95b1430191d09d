/*
 * router.h: routes compiled from [route] sections. A route matches an event
 * by type pattern (exact or glob: "order.*"), optionally by source instance
 * (names or globs: "pos-*") and by conditions on its fields ("when"); its
 * targets are channel instance names.
 */
#ifndef OG_CORE_ROUTER_H
#define OG_CORE_ROUTER_H

#include <stddef.h>

#include "event/cond.h"
#include "config/conf.h"
#include "event/event.h"

typedef struct og__router_s og__router_t;
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
